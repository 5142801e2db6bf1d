"""The service core: one resolved request per call, scored in-process or by queue workers."""
