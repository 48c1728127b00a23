"""Fixture: a real S3 API server (moto standalone) over HTTP."""
