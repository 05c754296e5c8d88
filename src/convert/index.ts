export { convertImage, ConvertError, type ConvertOptions, type ConvertResult, type ConvertedLayer, type ConvertProgress } from './convert.js';
