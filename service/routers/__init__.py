"""REST routers, one per concern, plus the helpers they share (`service.routers.common`)."""
