"""HTTP plumbing shared by the provider routes (framework-aware; the core never imports it)."""
