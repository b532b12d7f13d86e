// Weights by name: the catalog (torchvision's published weights, timm's on the Hugging Face hub),
// the cache and the downloader.
export { DEFAULT_HF_URL, DEFAULT_TORCHVISION_URL, TIMM_ARCHITECTURES, baseUrl, hubCacheDir, isWeightsName, knownWeights, parseWeightsName, registerWeights, type HubFile, type WeightsSource } from './catalog.js';
export type { TorchvisionWeights, WeightsConfig, WeightsPreprocess } from './catalog-types.js';
export { DownloadError, downloadFile, offlineFromEnvironment, sha256File, type DownloadFailure, type DownloadOptions, type DownloadResult } from './download.js';
export { cachedWeights, resolveWeights, weightsLocation, type ResolveOptions, type ResolvedWeights } from './resolve.js';
export { createTransferProgress, type TransferProgress, type TransferProgressMode } from './progress.js';
export { IMAGENET_CLASSES } from './imagenet-classes.js';
