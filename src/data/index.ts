// Datasets (image folders, CSV lists, built-in MNIST/Fashion-MNIST), transforms, batch loader.
export { type RawImage, decodeImage } from './image.js';
export { type Dataset, type ArrayDatasetInit, type SplitOptions, ArrayDataset, subset, splitDataset } from './dataset.js';
export { ImageFolder, ImageFiles, CsvList, IMAGE_EXTENSIONS } from './folder.js';
export { fashionMnist, mnist, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR } from './builtin.js';
export { type TransformOptions, trainTransform, evalTransform, IMAGENET_MEAN, IMAGENET_STD } from './transforms.js';
export { type Batch, type LoaderOptions, DataLoader } from './loader.js';
export { type DataOptions, type DataSplit, openData, absoluteDataSpec } from './spec.js';
