"""One recipe module per dataset family; importing a module registers its recipes."""
