#!/usr/bin/python3
"""Mints an HS256 token for trying crudcast --ws-auth jwt with the examples (standard library only).

    openssl rand -base64 48 > jwt.secret && chmod 600 jwt.secret     # once; crudcast --jwt-secret-file jwt.secret
    python3 mint_token.py jwt.secret > token.jwt                      # every topic, valid for an hour
    python3 mint_token.py jwt.secret --topics author,book --ttl 300 > token.jwt

The secret is the file's bytes with one trailing newline removed, as crudcast reads it. The token
goes to stdout only: redirect it into a file (not a shell variable that lands in your history).
For tests and trying things out; real tokens come from your identity provider.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def read_secret(path):
    with open(path, "rb") as f:
        secret = f.read()
    if secret.endswith(b"\n"):
        secret = secret[:-1]
        if secret.endswith(b"\r"):
            secret = secret[:-1]
    if len(secret) < 32:
        sys.exit(f"mint_token.py: {path} holds {len(secret)} bytes; HS256 needs at least 32 (RFC 7518 section 3.2)")
    return secret


def mint(secret, subject, ttl_seconds, topics):
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    if topics:
        claims["topics"] = topics
    signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def main():
    parser = argparse.ArgumentParser(description="Mint an HS256 token for crudcast --ws-auth jwt.")
    parser.add_argument("secret_file", help="the file crudcast reads with --jwt-secret-file")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    parser.add_argument("--topics", default="", help="comma-separated topics claim, '*' for all (default: no claim)")
    parser.add_argument("--sub", default="example-subscriber", help="the subject claim")
    args = parser.parse_args()
    topics = [t.strip() for t in args.topics.split(",") if t.strip()]
    print(mint(read_secret(args.secret_file), args.sub, args.ttl, topics))


if __name__ == "__main__":
    main()
