"""A real gateway with the status page mounted in front of it, the way `inferplane gateway`
mounts it (`with_status_page(GatewayApp(state), gateway_status_board(state))`).

    python -m tests.e2e.status_gateway FLEET PORT
"""

import sys

import uvicorn

from inferplane.gateway.app import GatewayApp
from inferplane.gateway.serve import GatewayOptions, build_state
from inferplane.telemetry.ui import gateway_status_board, with_status_page


def main(fleet: str, port: int) -> None:
    state = build_state(GatewayOptions(fleet, port=port))
    app = with_status_page(GatewayApp(state), gateway_status_board(state))
    uvicorn.run(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
