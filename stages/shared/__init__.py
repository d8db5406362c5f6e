"""What several stages share: reading a dataset's arrays for a model, loading trained models, plots."""
