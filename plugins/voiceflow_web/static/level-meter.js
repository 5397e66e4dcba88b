// An AudioWorklet that tells the page when a signal is voiced, in the AudioContext's own time:
// the microphone and the agent's voice go through one meter each, in one context, so the gap
// between the caller's last voiced block and the agent's first (mouth-to-ear) is read on one
// clock, to the 128-sample block (2.7 ms at 48 kHz).
class LevelMeter extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.threshold = Math.pow(10, (o.thresholdDb ?? -45) / 20);  // RMS, full scale 1
    this.hang = o.hangSeconds ?? 0.3;       // silence this long ends a voiced stretch
    this.voiced = false;
    this.lastVoicedEnd = 0;
    this.peak = 0;
    this.nextLevel = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const samples = channels[0];
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const rms = Math.sqrt(sum / samples.length);
    const start = currentTime;
    const end = start + samples.length / sampleRate;
    this.peak = Math.max(this.peak, rms);
    if (rms >= this.threshold) {
      if (!this.voiced) {
        this.voiced = true;
        this.port.postMessage({ kind: "start", time: start });
      }
      this.lastVoicedEnd = end;
    } else if (this.voiced && end - this.lastVoicedEnd >= this.hang) {
      this.voiced = false;
      this.port.postMessage({ kind: "end", time: this.lastVoicedEnd });
    }
    if (end >= this.nextLevel) {
      this.port.postMessage({ kind: "level", time: end, rms: this.peak });
      this.peak = 0;
      this.nextLevel = end + 0.05;
    }
    return true;
  }
}

registerProcessor("level-meter", LevelMeter);
