"""Pure helpers of the orchestration flows: result cache (resume) and accuracy gate."""
