"""Small catalogs for tests: a made-up 4-slot board whose entries the tests bend."""

VALID_MODEL = """
schema = 1
[models.T-4GB]
display_name = "Test 4GB"
pci_device_ids = ["0x1234"]
nvml_names = ["NVIDIA Test"]
memory_gb = 4
mig_supported = true
memory_slots = 4
compute_slices = 2
media_extended_max = 1

[[models.T-4GB.profiles]]
name = "1g.1gb"
smi_id = 19
nvml_profile = 0
compute_slices = 1
memory_slices = 1
memory_gb = 1
starts = [0, 1, 2, 3]
size = 1
max_count = 2

[[models.T-4GB.profiles]]
name = "2g.2gb"
smi_id = 14
nvml_profile = 1
compute_slices = 2
memory_slices = 2
memory_gb = 2
starts = [2]
size = 2
max_count = 1
"""
