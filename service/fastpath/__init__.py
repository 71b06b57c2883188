"""The hot routes (`/predict`, V2 infer) answered on raw ASGI ahead of FastAPI."""
