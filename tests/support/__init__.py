"""What many tests share: builders of domain records and access to an engine's SQL store."""
