// Score a TF.js graph model with TensorFlow.js alone (pure-JS CPU backend), in a fresh Node process.
//
//   node check.js MODEL_JSON IMAGES_BIN COUNT SIZE OUT_JSON
//
// IMAGES_BIN holds COUNT images as float32 [COUNT, SIZE, SIZE, 3], RGB 0-255, little-endian. OUT_JSON
// receives what tlstudio/core/deploy/runtime_check.py writes for the other formats: the probabilities
// (one batch-1 call per image), the latency of a batch of one (30 runs, milliseconds) and the
// throughput of batches of 32 (images per second). Nothing of TL Studio or Python is used here.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const { loadGraphModel } = require('@tensorflow/tfjs-converter');

const LATENCY_RUNS = 30;
const THROUGHPUT_BATCH = 32;
const THROUGHPUT_RUNS = 5;

async function load(modelPath) {
  const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
  const folder = path.dirname(modelPath);
  const specs = [];
  const shards = [];
  for (const group of json.weightsManifest) {
    for (const file of group.paths) shards.push(fs.readFileSync(path.join(folder, file)));
    specs.push(...group.weights);
  }
  const bytes = Buffer.concat(shards);
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const artifacts = {
    modelTopology: json.modelTopology,
    weightSpecs: specs,
    weightData,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
  };
  const model = await loadGraphModel({ load: async () => artifacts });
  const output = json.userDefinedMetadata && json.userDefinedMetadata.output;
  return (x) => (output ? model.execute(x, output) : model.execute(x));
}

async function main() {
  const [modelPath, imagesPath, countText, sizeText, outPath] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const run = await load(modelPath);
  const count = Number(countText);
  const size = Number(sizeText);
  const raw = fs.readFileSync(imagesPath);
  const pixels = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const one = size * size * 3;
  const image = (i) => pixels.subarray((i % count) * one, ((i % count) + 1) * one);
  const call = async (x) => {
    const y = run(x);
    const values = await y.data();
    y.dispose();
    return values;
  };
  const probabilities = [];
  for (let i = 0; i < count; i++) {
    const x = tf.tensor4d(image(i), [1, size, size, 3]);
    probabilities.push(Array.from(await call(x)));
    x.dispose();
  }
  const first = tf.tensor4d(image(0), [1, size, size, 3]);
  for (let i = 0; i < 3; i++) await call(first);
  const latency = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    const start = process.hrtime.bigint();
    await call(first);
    latency.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  first.dispose();
  const batch = new Float32Array(THROUGHPUT_BATCH * one);
  for (let i = 0; i < THROUGHPUT_BATCH; i++) batch.set(image(i), i * one);
  const x = tf.tensor4d(batch, [THROUGHPUT_BATCH, size, size, 3]);
  await call(x);
  const start = process.hrtime.bigint();
  for (let i = 0; i < THROUGHPUT_RUNS; i++) await call(x);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  x.dispose();
  const result = {
    probabilities: count ? probabilities : [],
    latency_ms: latency,
    throughput_images_per_second: (THROUGHPUT_BATCH * THROUGHPUT_RUNS) / seconds,
    runtime: `TensorFlow.js ${tf.version_core}, backend ${tf.getBackend()}, Node ${process.version}`,
  };
  fs.writeFileSync(outPath, JSON.stringify(result));
}

main().catch((err) => {
  console.error(String((err && err.stack) || err).split('\n')[0]);
  process.exit(1);
});
