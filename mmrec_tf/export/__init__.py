"""SavedModel export for TF Serving: versioned atomic layout, signatures, retrieval indexes, warm-up, checks."""

from mmrec_tf.export.saved_model import export_model
from mmrec_tf.export.serve_check import format_serve_check_report, serve_check
from mmrec_tf.export.tf_serving import (docker_command, read_warmup_requests, write_batching_parameters,
                                        write_models_config, write_warmup_requests)
from mmrec_tf.export.versioning import list_versions, next_version

__all__ = ["docker_command", "export_model", "format_serve_check_report", "list_versions", "next_version",
           "read_warmup_requests", "serve_check", "write_batching_parameters", "write_models_config",
           "write_warmup_requests"]
