"""Use cases of the registry: sites and enrollment, operators, desired state, fleet."""
