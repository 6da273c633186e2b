import { readFileSync } from 'node:fs';
import { decodeRgb, resizeAndCrop } from './src/label/preprocess.ts';
const img = await decodeRgb(readFileSync('test/fixtures/preprocess/astronaut.jpg'));
for (let i = 0; i < 100; i++) resizeAndCrop(img, 224, 224);
