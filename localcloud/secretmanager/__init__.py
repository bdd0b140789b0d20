"""Emulator of Secret Manager v1 (gRPC ``google.cloud.secretmanager.v1.SecretManagerService``): secrets with
numbered versions, version states, server-side CRC32C, etags and an in-memory IAM policy."""
