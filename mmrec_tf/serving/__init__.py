"""Clients for a running TF Serving: REST and gRPC request bodies from Python values, replies back to arrays."""

from mmrec_tf.serving.client import (TFServingClient, TFServingError, grpc_predict_request, parse_grpc_response,
                                     parse_rest_response, rest_predict_body)

__all__ = ["TFServingClient", "TFServingError", "grpc_predict_request", "parse_grpc_response", "parse_rest_response",
           "rest_predict_body"]
