"""What is built on explanations: agreement, faithfulness, checks, edits, documents, evaluation, data attribution, corpus runs."""
