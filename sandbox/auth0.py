"""The Auth0 tenant outside the cluster, as AlphaSwarm is configured for it: the JWKS URL the core
pods fetch keys from and the key set it serves. The topology writes the URL into the core pods'
env, `sandbox.egress` decides whether a pod can reach it, and the sandbox serves the same document
at the same path so a flow can probe JWKS "from outside" against the sandbox.
"""

from __future__ import annotations

JWKS_HOST = "your-tenant.us.auth0.com"
JWKS_PATH = "/.well-known/jwks.json"
JWKS_URL = f"https://{JWKS_HOST}{JWKS_PATH}"
JWKS_DOCUMENT = {
    "keys": [
        {
            "alg": "RS256",
            "kty": "RSA",
            "use": "sig",
            "kid": "k3Jc0YzT1a9Qe8w2R5nB7",
            "n": "xGOr-H7A-PWG3z0y8Jtq2fEwGkNQ0bmhYB2T9VYk7d1sH9wVh0p8o4UWQ5p1r7G3mX8uJ2c9Kq"
            "4yZ1bT6nR0vL8sD3fH5jW2eP7aQ9cM1xN4kU6gB0iY3tO8rS5wE2lA7dF9hJ1mK4pV6zC8qX0uT3",
            "e": "AQAB",
            "x5t": "Nj2lP8sK4wQ1eR7tY5uI3oA9dF6",
        },
        {
            "alg": "RS256",
            "kty": "RSA",
            "use": "sig",
            "kid": "P9sLm2Xq7Vd4Rt1Wz8Yb3",
            "n": "1Qe8w2R5nB7k3Jc0YzT1a9xGOr-H7A-PWG3z0y8Jtq2fEwGkNQ0bmhYB2T9VYk7d1sH9wVh0p8o"
            "4UWQ5p1r7G3mX8uJ2c9Kq4yZ1bT6nR0vL8sD3fH5jW2eP7aQ9cM1xN4kU6gB0iY3tO8rS5wE2lA7d",
            "e": "AQAB",
            "x5t": "Qw8eR1tY4uI7oP0aS3dF6gH9jK2",
        },
    ]
}
