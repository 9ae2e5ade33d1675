"""The edges: REST API, pages, the Socket.IO namespace, auth and error translation."""
