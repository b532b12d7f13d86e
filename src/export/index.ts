// Export of tuned models to other runtimes: ONNX (onnxruntime in Node and browsers).
export { exportOnnx, exportDeltaOnnx, readOnnxMeta, ExportError, OPSETS, type ExportOnnxOptions, type ExportedOnnx, type ExportSource, type OnnxMeta, type OnnxPreprocess } from './onnx.js';
export { writeWebPage, ORT_WEB_FILES, type WebPage } from './web.js';
