"""`python -m emulator --port 0`: run the emulator standalone and print its URLs as name=value lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .core import Emulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="bot token to accept (default: a random one, printed)")
    parser.add_argument("--bot-name", default="EmuBot")
    parser.add_argument("--guild", default=None, help="create a guild with this name and a #general channel")
    parser.add_argument("--interaction-deadline", type=float, default=3.0)
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429 by itself")
    parser.add_argument("--shards", type=int, default=1,
                        help="shard count GET /gateway/bot recommends (events are routed by guild shard)")
    parser.add_argument("--history", type=int, default=10000,
                        help="how many REST calls and gateway events to keep for inspection")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    emu = Emulator(
        token=args.token, bot_name=args.bot_name, interaction_deadline=args.interaction_deadline,
        rate_limits=not args.no_rate_limits, history_limit=args.history,
        shards=args.shards,
    )
    try:
        await emu.start(args.host, args.port)
    except OSError as exc:
        print(f"python -m emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        raise SystemExit(2) from None
    lines = [
        f"rest_url={emu.rest_url}",
        f"gateway_url={emu.gateway_url}",
        f"control_url={emu.control_url}",
        f"token={emu.token}",
        f"application_id={emu.application_id}",
    ]
    if args.guild:
        guild = await emu.create_guild(args.guild)
        lines += [f"guild_id={guild.id}", f"channel_id={guild.text_channels[0].id}"]
    print("\n".join(lines), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emu.stop()
    if emu.unknown_routes:
        print("unknown routes hit: " + ", ".join(emu.unknown_routes), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
