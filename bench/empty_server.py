"""The baseline of GetLevel: FriendshipService with an empty GetLevel (no database), behind
the same server stack (servicekit.server.GrpcServer: health, reflection, auth, metrics).

    python -m bench.empty_server --port 0 --secret S     (prints {"port": N} once serving)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import grpc

from servicekit.auth import TokenVerifier
from servicekit.server import GrpcServer, wait_for_termination_signal
from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc

SERVICE = friendship_pb2.DESCRIPTOR.services_by_name["FriendshipService"].full_name


class EmptyFriendship(friendship_pb2_grpc.FriendshipServiceServicer):
    async def GetLevel(
        self,
        request: friendship_pb2.GetLevelRequest,
        context: grpc.aio.ServicerContext[
            friendship_pb2.GetLevelRequest, friendship_pb2.GetLevelResponse
        ],
    ) -> friendship_pb2.GetLevelResponse:
        return friendship_pb2.GetLevelResponse(user_id=request.user_id)


async def serve(port: int, secret: str) -> None:
    server = GrpcServer(
        service_names=[SERVICE],
        scopes_by_method={f"/{SERVICE}/GetLevel": "friendship:read"},
        verifier=TokenVerifier(secret=secret, public_key=None),
        max_message_bytes=4 << 20,
    )
    # Only GetLevel is served; the stubs declare the other methods abstract.
    servicer = EmptyFriendship()  # type: ignore[abstract]
    friendship_pb2_grpc.add_FriendshipServiceServicer_to_server(servicer, server.server)
    bound = await server.start(f"127.0.0.1:{port}")
    sys.stdout.write(json.dumps({"port": bound}) + "\n")
    sys.stdout.flush()
    await wait_for_termination_signal()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.empty_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.secret))


if __name__ == "__main__":
    main()
