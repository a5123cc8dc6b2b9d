"""HTTP surfaces. Handlers are thin: parse, call one service function, shape the response."""
