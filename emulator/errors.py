"""Discord's error bodies and the JSON error codes the emulator answers with."""

from __future__ import annotations

from typing import Any

# JSON error codes (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json)
GENERAL = 0
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MEMBER = 10007
UNKNOWN_MESSAGE = 10008
UNKNOWN_ROLE = 10011
UNKNOWN_USER = 10013
UNKNOWN_EMOJI = 10014
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
UNKNOWN_APPLICATION_COMMAND = 10063
ALREADY_ACKNOWLEDGED = 40060
MISSING_ACCESS = 50001
CANNOT_EDIT_OTHERS_MESSAGE = 50005
EMPTY_MESSAGE = 50006
CANNOT_DM_USER = 50007
MISSING_PERMISSIONS = 50013
INVALID_FORM_BODY = 50035
INVALID_JSON = 50109
THREAD_ALREADY_CREATED = 160004
THREAD_LOCKED = 160005

MESSAGES = {
    UNKNOWN_CHANNEL: "Unknown Channel",
    UNKNOWN_GUILD: "Unknown Guild",
    UNKNOWN_MEMBER: "Unknown Member",
    UNKNOWN_MESSAGE: "Unknown Message",
    UNKNOWN_ROLE: "Unknown Role",
    UNKNOWN_USER: "Unknown User",
    UNKNOWN_EMOJI: "Unknown Emoji",
    UNKNOWN_WEBHOOK: "Unknown Webhook",
    UNKNOWN_INTERACTION: "Unknown interaction",
    UNKNOWN_APPLICATION_COMMAND: "Unknown application command",
    ALREADY_ACKNOWLEDGED: "Interaction has already been acknowledged.",
    MISSING_ACCESS: "Missing Access",
    CANNOT_EDIT_OTHERS_MESSAGE: "Cannot edit a message authored by another user",
    EMPTY_MESSAGE: "Cannot send an empty message",
    CANNOT_DM_USER: "Cannot send messages to this user",
    MISSING_PERMISSIONS: "Missing Permissions",
    INVALID_FORM_BODY: "Invalid Form Body",
    INVALID_JSON: "The request body contains invalid JSON.",
    THREAD_ALREADY_CREATED: "A thread has already been created for this message",
    THREAD_LOCKED: "Thread is locked",
}

# HTTP status Discord uses for each code when it is not the obvious 400.
STATUS = {
    UNKNOWN_CHANNEL: 404,
    UNKNOWN_GUILD: 404,
    UNKNOWN_MEMBER: 404,
    UNKNOWN_MESSAGE: 404,
    UNKNOWN_ROLE: 404,
    UNKNOWN_USER: 404,
    UNKNOWN_WEBHOOK: 404,
    UNKNOWN_INTERACTION: 404,
    UNKNOWN_APPLICATION_COMMAND: 404,
    MISSING_ACCESS: 403,
    CANNOT_EDIT_OTHERS_MESSAGE: 403,
    CANNOT_DM_USER: 403,
    MISSING_PERMISSIONS: 403,
}


class APIError(Exception):
    """Raised by a REST handler; becomes Discord's error body with the right HTTP status."""

    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        status: int | None = None,
        errors: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        self.status = status or STATUS.get(code, 400)
        self.errors = errors
        super().__init__(f"{self.status} {self.code}: {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


class FormErrors:
    """Collects field errors into Discord's nested `errors` layout for a 50035 Invalid Form Body."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[str | int, ...] | list[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path, limit: int, value_len: int | None = None) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def __bool__(self) -> bool:
        return bool(self.tree)

    def raise_if_any(self) -> None:
        if self.tree:
            raise APIError(INVALID_FORM_BODY, errors=self.tree)


def http_error_body(status: int) -> dict[str, Any]:
    """The body Discord gives for plain HTTP errors (unknown route, bad method, no token)."""
    text = {401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return {"message": f"{status}: {text}", "code": 0}


def _cloudflare_page(title: str) -> str:
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n")


def server_error_answer(status: int) -> tuple[Any, str]:
    """(body, content type) of a 5xx as Discord's edge gives it: the API's own 500 is JSON; a 502 or 504
    is Cloudflare's HTML page; a 503 is the proxy's plain-text line (clients must cope with all three)."""
    if status == 502:
        return _cloudflare_page("502 Bad Gateway"), "text/html"
    if status == 504:
        return _cloudflare_page("504 Gateway Time-out"), "text/html"
    if status == 503:
        return "upstream connect error or disconnect/reset before headers. reset reason: overflow", "text/plain"
    text = {500: "Internal Server Error"}.get(status, "Server Error")
    return {"message": f"{status}: {text}", "code": 0}, "application/json"
