"""The seed import path of ``SagaOrchestrator``."""
