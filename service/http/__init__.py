"""The HTTP transport: FastAPI app, request/response models, auth, limits and metrics."""
