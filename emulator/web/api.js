// The emulator's control API (see emulator/README.md): every action the page takes goes through it.
const BASE = "/_emulator";

export class ApiError extends Error {}

async function call(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(data.error || `${method} ${path} failed (${response.status})`);
  return data;
}

export const api = {
  info: () => call("GET", "/"),
  state: () => call("GET", "/state"),
  messages: (channelId) => call("GET", `/channels/${channelId}/messages`),
  dmMessages: (userId) => call("GET", `/users/${userId}/dm/messages`),
  commands: (userId, channelId) => call("GET", `/users/${userId}/commands` + (channelId ? `?channel_id=${channelId}` : "")),
  send: (userId, channelId, content) => call("POST", `/users/${userId}/messages`, { channel_id: channelId, content }),
  dm: (userId, content) => call("POST", `/users/${userId}/dm`, { content }),
  slash: (userId, name, options, channelId) => call("POST", `/users/${userId}/slash`, { name, options, channel_id: channelId }),
  autocomplete: (userId, name, options, focused, channelId) =>
    call("POST", `/users/${userId}/autocomplete`, { name, options, focused, channel_id: channelId }),
  click: (userId, messageId, customId) => call("POST", `/users/${userId}/click`, { message_id: messageId, custom_id: customId }),
  select: (userId, messageId, customId, values) =>
    call("POST", `/users/${userId}/select`, { message_id: messageId, custom_id: customId, values }),
  submitModal: (userId, interactionId, values) =>
    call("POST", `/users/${userId}/modal`, { interaction_id: interactionId, values }),
  react: (userId, messageId, emoji) => call("POST", `/users/${userId}/react`, { message_id: messageId, emoji }),
  unreact: (userId, messageId, emoji) => call("POST", `/users/${userId}/unreact`, { message_id: messageId, emoji }),
  // Waits (up to the interaction deadline and a little more) for the bot's first answer.
  response: (interactionId) => call("GET", `/interactions/${interactionId}?wait=3.5`),
};

// Messages created, edited, deleted or reacted to, as they happen; reconnects after a drop.
export function follow(onMessage, onStatus) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${BASE}/live`;
  const socket = new WebSocket(url);
  socket.onopen = () => onStatus(true);
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "message") onMessage(data.message);
  };
  socket.onclose = () => {
    onStatus(false);
    setTimeout(() => follow(onMessage, onStatus), 1000);
  };
}
