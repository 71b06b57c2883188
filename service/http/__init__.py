"""The HTTP transport: uvicorn's protocol with connection limits and draining, and TLS."""
