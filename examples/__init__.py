"""Demo material: participant services for a trip booking and sample saga requests."""
