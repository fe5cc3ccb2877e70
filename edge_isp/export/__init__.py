"""Export: ONNX, FP16 and INT8 measured per light level, TensorRT engines for a board.

Modules, one job each (import what you use; nothing heavy loads with the package):

- :mod:`~edge_isp.export.onnx_export`: the ONNX graph of the model I/O contract, checked and
  compared with torch (what the file says about itself: :mod:`edge_isp.contract.metadata`).
- :mod:`~edge_isp.export.precision`: FP16 conversion and INT8 Q/DQ quantization;
  :mod:`~edge_isp.export.calibration`: calibration frames; :mod:`~edge_isp.export.sensitivity`
  and :mod:`~edge_isp.export.precision_search`: which layers stay in FP32, measured.
- :mod:`~edge_isp.export.accuracy`: accuracy per precision per light level (ONNX Runtime).
- :mod:`~edge_isp.contract.targets`: ``export/targets/*.toml``; :mod:`~edge_isp.contract.build_plan`,
  :mod:`~edge_isp.contract.engine_cache`, :mod:`~edge_isp.contract.trtexec`: pure build logic;
  :mod:`~edge_isp.contract.tensorrt_build`: the thin TensorRT adapter; :mod:`~edge_isp.contract.engine`
  ties them; :mod:`~edge_isp.export.workflow`: ``edge-isp export all``.
"""
