"""The mlpilot server as the benchmark runs it: ``create_app`` plus a constant endpoint.

``POST /bench/constant`` reads the body and returns a fixed answer: the HTTP
floor of the same server, against which single-row prediction latency is compared.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from mlpilot.serve import ServeSettings, create_app

CONSTANT = b'{"model":"churn","version":1,"predictions":["no"]}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_app(ServeSettings(home=args.workspace, tune_gc=True))  # as `mlpilot serve` runs it

    @app.post("/bench/constant", include_in_schema=False)
    async def constant(request: Request) -> Response:
        await request.body()
        return Response(CONSTANT, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
