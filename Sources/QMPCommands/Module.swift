// Placeholder: the module's first type lands here.
