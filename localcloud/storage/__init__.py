"""Emulator of Cloud Storage's JSON API (``storage/v1``), served over plain HTTP as ``STORAGE_EMULATOR_HOST``
for the unmodified ``google-cloud-storage`` client: buckets, objects with generations and metagenerations,
and the ``ifGenerationMatch`` / ``ifMetagenerationMatch`` preconditions that make an object a
compare-and-swap register."""
