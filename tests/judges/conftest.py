from serve_fixtures import tiny_server  # noqa: F401  (the shared real server)
