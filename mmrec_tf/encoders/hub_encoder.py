"""A frozen TF2 SavedModel (TF-Hub handle or local folder) as a Keras 3 layer.

`tensorflow_hub.KerasLayer` subclasses the tf-keras (Keras 2) Layer and breaks
inside Keras 3 models, so this layer calls the object returned by
`tensorflow_hub.load` directly. The SavedModel's variables are not Keras
weights: the encoder is frozen (nothing in it is trained). They are tracked
through the layer, so `model.export(...)` carries them.

A local SavedModel folder is loaded with `tf.saved_model.load(folder)`, which is
what `tensorflow_hub.load` does for a local path (`hub.resolve` returns it
unchanged); only remote handles go through `tensorflow_hub`. This keeps local
models working where `import tensorflow_hub` fails: tensorflow-hub 0.16.1
imports `pkg_resources`, which setuptools removed in 82.0.0.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf


def load_saved_model(handle: str):
    """Loads a TF2 SavedModel from a local folder or a TF-Hub / Kaggle Models handle.

    Example:
    ```python
    module = load_saved_model("/models/text_embedding")
    ```
    """
    if os.path.isdir(handle):
        if not os.path.isfile(os.path.join(handle, "saved_model.pb")):
            raise FileNotFoundError(f"{handle} is a folder without saved_model.pb")
        return tf.saved_model.load(handle)
    try:
        import tensorflow_hub
    except ImportError as error:
        raise ImportError(
            f"Loading the remote handle {handle!r} needs tensorflow_hub, whose import failed "
            f"({error}); tensorflow-hub 0.16.1 needs pkg_resources: pip install 'setuptools<82'"
        ) from error
    return tensorflow_hub.load(handle)


@keras.saving.register_keras_serializable(package="mmrec_tf")
class HubEncoder(keras.layers.Layer):
    """Runs a TF2 SavedModel on its inputs; frozen, serialised by its handle.

    Args:
        handle: a local SavedModel folder or a TF-Hub / Kaggle Models handle
            (an online handle is fetched at construction; offline machines need a
            local folder or a populated `TFHUB_CACHE_DIR`).
        signature: None calls the restored object itself (`obj(inputs)`, the
            TF2 "reusable SavedModel" convention); a name such as
            `"serving_default"` calls `obj.signatures[name]` with the input passed
            as keyword `input_key`.
        input_key: keyword of the signature's input; None uses the signature's
            only input (error if it has several).
        output_key: the entry to return when the model returns a dict; None
            means the only entry (error if there are several).
        **kwargs: Layer arguments.

    Example:
    ```python
    encoder = HubEncoder("/models/text_embedding", signature="serving_default",
                         output_key="embedding")
    vectors = encoder(tf.constant(["a song", "a film"]))
    ```
    """

    def __init__(self, handle: str, signature: str | None = None, input_key: str | None = None,
                 output_key: str | None = None, **kwargs):
        if kwargs.get("trainable", False):
            raise ValueError("HubEncoder is frozen: its SavedModel variables are not trained")
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.handle = os.fspath(handle)
        self.signature = signature
        self.input_key = input_key
        self.output_key = output_key
        self.hub_module = load_saved_model(self.handle)
        if signature is None:
            if not callable(self.hub_module):
                raise ValueError(
                    f"HubEncoder: the SavedModel at {self.handle} is not callable; pass one of "
                    f"its signatures {sorted(self.hub_module.signatures)} as `signature`"
                )
            self._function = self.hub_module
        else:
            if signature not in self.hub_module.signatures:
                raise ValueError(
                    f"HubEncoder: the SavedModel at {self.handle} has no signature "
                    f"{signature!r}; it has {sorted(self.hub_module.signatures)}"
                )
            function = self.hub_module.signatures[signature]
            input_names = sorted(function.structured_input_signature[1])
            if input_key is None:
                if len(input_names) != 1:
                    raise ValueError(
                        f"HubEncoder: signature {signature!r} of {self.handle} takes inputs "
                        f"{input_names}; pass `input_key`"
                    )
                self.input_key = input_names[0]
            elif input_key not in input_names:
                raise ValueError(
                    f"HubEncoder: signature {signature!r} of {self.handle} has no input "
                    f"{input_key!r}; its inputs are {input_names}"
                )
            self._function = function

    def call(self, inputs):
        if self.signature is None:
            outputs = self._function(inputs)
        else:
            outputs = self._function(**{self.input_key: inputs})
        if isinstance(outputs, dict):
            if self.output_key is None:
                if len(outputs) != 1:
                    raise ValueError(
                        f"HubEncoder: {self.handle} returns {sorted(outputs)}; pass `output_key`"
                    )
                return next(iter(outputs.values()))
            if self.output_key not in outputs:
                raise ValueError(
                    f"HubEncoder: {self.handle} has no output {self.output_key!r}; its outputs "
                    f"are {sorted(outputs)}"
                )
            return outputs[self.output_key]
        if self.output_key is not None:
            raise ValueError(
                f"HubEncoder: {self.handle} returns a single tensor, not a dict; "
                "leave `output_key` as None"
            )
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "handle": self.handle,
            "signature": self.signature,
            "input_key": self.input_key,
            "output_key": self.output_key,
        })
        return config
