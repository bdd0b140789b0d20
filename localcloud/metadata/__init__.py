"""Emulator of the GCE metadata server: enough of ``/computeMetadata/v1/`` for ``google-auth`` to believe it
runs on Compute Engine (project id, the default service account, access and ID tokens), plus the token
authority's published certificates at ``/oauth2/v1/certs`` (PEM) and ``/oauth2/v3/certs`` (JWKS)."""
