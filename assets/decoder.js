// The VAE decoder's mean, p_θ(x|z), evaluated in the browser from the model's weights (Appendix C):
// h = tanh(W1 z + b1); Bernoulli: y = sigmoid(W2 h + b2); Gaussian (Frey): μ = sigmoid of the first D rows.
// vae_core.explorer.Explorer.decoder_payload() gives the weights as base64 float32, row-major.
function vaeFloat32(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function vaeMakeDecoder(payload) {
  const { J, H, D } = payload;
  const W1 = vaeFloat32(payload.w1), b1 = vaeFloat32(payload.b1);  // (H, J), (H)
  const W2 = vaeFloat32(payload.w2), b2 = vaeFloat32(payload.b2);  // (D or 2D, H), the mean's rows first
  const hidden = new Float64Array(H);
  return function decode(z) {  // z: J numbers -> Float32Array of D pixels in (0, 1)
    for (let i = 0; i < H; i++) {
      let s = b1[i];
      for (let j = 0; j < J; j++) s += W1[i * J + j] * z[j];
      hidden[i] = Math.tanh(s);
    }
    const out = new Float32Array(D);
    for (let d = 0; d < D; d++) {
      let s = b2[d];
      const row = d * H;
      for (let i = 0; i < H; i++) s += W2[row + i] * hidden[i];
      out[d] = 1 / (1 + Math.exp(-s));
    }
    return out;
  };
}
