"""The served churn model of tests/serve, reused: a real pipeline in a real registry."""

from tests.serve.conftest import (  # noqa: F401 - fixtures
    app,
    churn_frame,
    churn_model,
    churn_pipeline,
    client,
    rows,
    settings,
)
