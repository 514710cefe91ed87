"""Tasks: what each output predicts, its masked loss and metrics, class weights."""
