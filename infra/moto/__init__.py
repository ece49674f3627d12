"""moto's server as the local stack runs it (``python -m infra.moto.server``)."""
