"""``python -m bench`` (``make bench``): speed, scale and cost per saga on the full local cloud, each figure
printed beside its target and written to ``bench/results.json`` with the machine, the date and the commit."""
