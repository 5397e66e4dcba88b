// A receive transform (RTCRtpScriptTransform) on the agent's audio: it passes every packet on
// untouched and tells the page the RTP timestamp of the first one. The server sends nothing
// before the page says it can hear, so that packet is frame 0 of the agent's track; with it,
// the timestamps the browser says it is playing name the server's frames (see playout.py).
onrtctransform = (event) => {
  const transformer = event.transformer;
  let first = true;
  transformer.readable
    .pipeThrough(new TransformStream({
      transform(frame, controller) {
        if (first) {
          first = false;
          const meta = frame.getMetadata ? frame.getMetadata() : {};
          self.postMessage({ rtp: meta.rtpTimestamp ?? frame.timestamp });
        }
        controller.enqueue(frame);
      },
    }))
    .pipeTo(transformer.writable);
};
