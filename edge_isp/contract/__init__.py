"""The contracts between edge-isp's sides, each in one torch-free module (docs/ARCHITECTURE.md).

- :mod:`edge_isp.contract.model_input`: a RawFrame -> the model's ``{raw, noise}`` inputs, the
  one preprocessing path of the live runtime, INT8 calibration and the benchmarks;
- :mod:`edge_isp.contract.metadata`: what an exported model says about itself (ONNX
  ``metadata_props``), its tasks and their outputs;
- :mod:`edge_isp.contract.engine_sidecar`: the JSON file beside a TensorRT engine;
- :mod:`edge_isp.contract.gpu`: the GPU an engine is built for (name, compute capability);
- :mod:`edge_isp.contract.boxes`: the detector's output boxes and their overlap (IoU);
- :mod:`edge_isp.contract.sizes`: ``"WIDTHxHEIGHT"`` sizes;
- :mod:`edge_isp.contract.onnx_session`: an ONNX Runtime session set up one way everywhere.

Nothing here imports torch; each module is imported by its full name (this package's
``__init__`` imports none of them, so a side pays only for what it uses).
"""
