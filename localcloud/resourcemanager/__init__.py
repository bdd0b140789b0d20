"""Emulator of Resource Manager v3's tags (gRPC ``google.cloud.resourcemanager.v3.TagKeys``, ``TagValues`` and
``TagBindings``, with ``google.longrunning.Operations/GetOperation``): tag keys, tag values and bindings."""
