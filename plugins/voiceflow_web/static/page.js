// The call page: one button places a WebRTC call to the agent with the microphone, then shows
// the conversation as it happens. The protocol is in docs/transports.md ("The browser page").
//
// window.voiceflow holds what the page saw and measured (turns, voiced stretches, levels), for
// people reading the console and for the end-to-end test.
"use strict";

const settings = JSON.parse(document.getElementById("settings").textContent);
const token = new URLSearchParams(location.search).get("access_token");
const $ = (id) => document.getElementById(id);

const REPORT_MS = 40;          // how often the page reports what it has played
const NEW_TURN_SILENCE = 0.5;  // agent silence (s) that makes its next sound a new utterance

const state = window.voiceflow = {
  status: "idle",              // idle, connecting, live, ended
  callId: null,
  ended: null,                 // {reason} or {error, message}
  events: [],                  // every message from the server, in order
  turns: {},                   // turn number -> {kind, user, agent, heard, outcome, m2eServer, m2ePage}
  mic: [],                     // voiced stretches of the microphone [{start, end}] (AudioContext s)
  agent: [],                   // voiced stretches of the agent's voice, same clock
  agentLevels: [],             // [time, rms] every 50 ms
  pageM2E: [],                 // mouth-to-ear measured here, ms, one per agent utterance after the caller spoke
};

let call = null;

$("agent").textContent = settings.agent;
$("call").onclick = () => (call ? call.hangUp() : placeCall());

function setStatus(status, text) {
  state.status = status;
  $("status").textContent = text;
  $("call").textContent = status === "live" || status === "connecting" ? "Hang up" : "Call";
  $("call").classList.toggle("live", status === "live" || status === "connecting");
}

async function placeCall() {
  setStatus("connecting", "Connecting…");
  try {
    call = await Call.start();
  } catch (error) {
    call = null;
    setStatus("ended", `Could not call: ${error.message || error}`);
  }
}

class Call {
  static async start() {
    const self = new Call();
    await self.open();
    return self;
  }

  async open() {
    this.audio = new AudioContext();
    await this.audio.audioWorklet.addModule("level-meter.js");
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    this.meter(this.mic, state.mic, "you", -45, 0.2);

    this.pc = new RTCPeerConnection({ iceServers: settings.ice_servers.map((urls) => ({ urls })) });
    const transceiver = this.pc.addTransceiver(this.mic.getAudioTracks()[0], { direction: "sendrecv", streams: [this.mic] });
    this.receiver = transceiver.receiver;
    this.anchor = null;
    this.reportsPlayout = typeof RTCRtpScriptTransform === "function";
    if (this.reportsPlayout) {
      const worker = new Worker("rtp-anchor.js");
      worker.onmessage = (event) => { this.anchor = event.data.rtp; this.send({ type: "anchor", rtp: this.anchor }); };
      this.receiver.transform = new RTCRtpScriptTransform(worker, {});
    }
    this.pc.ontrack = (event) => this.hear(event.streams[0] || new MediaStream([event.track]));
    this.channel = this.pc.createDataChannel("voiceflow");
    this.channel.onopen = () => {
      this.send({ type: "hello", playout: this.reportsPlayout ? "rtp" : "none" });
      this.reporter = setInterval(() => this.reportPlayout(), REPORT_MS);
      setStatus("live", "In a call: speak whenever you like.");
    };
    this.channel.onmessage = (event) => this.onEvent(JSON.parse(event.data));
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === "failed") this.end({ error: "connection", message: "the connection failed" });
    };

    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGathered(this.pc);
    const url = new URL("call", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (token) url.searchParams.set("access_token", token);
    this.socket = new WebSocket(url);
    this.socket.onopen = () => this.socket.send(JSON.stringify({ type: "offer", sdp: this.pc.localDescription.sdp }));
    this.socket.onmessage = (event) => this.onSignal(JSON.parse(event.data));
    this.socket.onclose = () => this.end(state.ended || { reason: "the connection closed" });
  }

  onSignal(msg) {
    state.events.push(msg);
    if (msg.type === "answer") {
      state.callId = msg.call_id;
      this.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } else if (msg.type === "hangup") {
      this.end({ reason: msg.reason });
    } else if (msg.type === "error") {
      this.end({ error: msg.code, message: msg.message });
    }
  }

  onEvent(msg) {
    state.events.push(msg);
    if (msg.type === "transcript") {
      turnRow(msg.turn).user = msg.text;
    } else if (msg.type === "turn" && msg.event === "started") {
      const turn = turnRow(msg.turn);
      turn.kind = msg.kind;
      turn.startedAt = this.audio.currentTime;
    } else if (msg.type === "turn" && msg.event === "ended") {
      Object.assign(turnRow(msg.turn), {
        kind: msg.kind, agent: msg.agent_text, heard: msg.heard_text, outcome: msg.outcome,
        m2eServer: msg.mouth_to_ear_ms,
      });
    }
    claimMeasurement();
    render();
  }

  // The agent's voice: played by an <audio> element (so the browser's echo canceller hears it
  // as the far end) and metered on the page's clock.
  hear(stream) {
    const element = new Audio();
    element.srcObject = stream;
    element.play().catch(() => setStatus("live", "Click the page to hear the agent."));
    this.element = element;
    this.meter(stream, state.agent, "them", -45, NEW_TURN_SILENCE, (time) => this.agentStarted(time));
  }

  meter(stream, stretches, id, thresholdDb, hangSeconds, onStart) {
    const source = this.audio.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(this.audio, "level-meter", { processorOptions: { thresholdDb, hangSeconds } });
    const mute = this.audio.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(this.audio.destination);
    node.port.onmessage = ({ data }) => {
      if (data.kind === "start") {
        stretches.push({ start: data.time, end: null });
        $(id).classList.add("on");
        if (onStart) onStart(data.time);
      } else if (data.kind === "end") {
        stretches[stretches.length - 1].end = data.time;
        $(id).classList.remove("on");
      } else {
        if (id === "them") state.agentLevels.push([data.time, data.rms]);
        $(`${id}-level`).value = Math.max(-70, 20 * Math.log10(data.rms + 1e-9));
      }
    };
  }

  // Mouth-to-ear as the caller lives it: from the end of the caller's last voiced stretch to the
  // first voiced block of the agent's answer, both read on this page's audio clock.
  agentStarted(time) {
    const spoke = state.mic.filter((s) => s.start < time);
    const last = spoke[spoke.length - 1];
    const previousAgent = state.agent[state.agent.length - 2];
    if (!last || last.end === null || last.end > time) return;          // the caller is still talking
    if (previousAgent && previousAgent.start > last.end) return;      // no new words since the agent last spoke
    state.pageM2E.push({ at: time, ms: Math.round(1000 * (time - last.end)), turn: null });
    claimMeasurement();
    render();
  }

  // What the browser is playing out now, as the RTP timestamp of the agent's packet: the server
  // turns it into the playback marks that decide what the caller heard.
  reportPlayout() {
    if (!this.reportsPlayout || this.anchor === null) return;
    const source = this.receiver.getSynchronizationSources()[0];
    if (!source || source.rtpTimestamp === this.lastReported) return;
    this.lastReported = source.rtpTimestamp;
    const now = source.timestamp > 1e12 ? performance.timeOrigin + performance.now() : performance.now();
    this.send({ type: "played", rtp: source.rtpTimestamp, age_ms: Math.max(0, Math.min(59999, now - source.timestamp)) });
  }

  send(msg) {
    if (this.channel && this.channel.readyState === "open") this.channel.send(JSON.stringify(msg));
  }

  hangUp() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ type: "hangup" }));
    else this.end({ reason: "hung up" });
  }

  end(how) {
    if (state.ended && state.status === "ended") return;
    state.ended = how;
    clearInterval(this.reporter);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close();
    this.pc.close();
    this.mic.getTracks().forEach((track) => track.stop());
    this.audio.close();
    call = null;
    setStatus("ended", how.error ? `Call ended: ${how.message}` : `Call ended: ${how.reason}.`);
  }
}

function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  });
}

function turnRow(number) {
  return (state.turns[number] ||= { number, kind: "", user: "", agent: "", heard: "", outcome: "", m2eServer: null, m2ePage: null });
}

// A page measurement belongs to the reply that was playing: the latest turn (not the greeting)
// whose start had been announced by then. The announcement may trail the sound by a poll of the
// server's relay, hence the slack; a reply cut off before it was heard gets no figure.
const ANNOUNCE_SLACK = 0.5;

function claimMeasurement() {
  for (const measurement of state.pageM2E.filter((m) => m.turn === null)) {
    const started = Object.values(state.turns)
      .filter((t) => t.kind && t.kind !== "greeting" && t.startedAt !== undefined && t.startedAt <= measurement.at + ANNOUNCE_SLACK)
      .sort((a, b) => b.number - a.number);
    const turn = started[0];
    if (!turn || turn.m2ePage !== null) continue;
    turn.m2ePage = measurement.ms;
    measurement.turn = turn.number;
  }
}

function render() {
  const list = $("turns");
  list.replaceChildren(...Object.values(state.turns).map((turn) => {
    const item = document.createElement("li");
    item.className = `turn ${turn.outcome}`;
    item.dataset.turn = turn.number;
    if (turn.user) item.append(line("You", turn.user, "user"));
    if (turn.agent || turn.kind) {
      const agent = line("Agent", "", "agent");
      const heard = turn.outcome === "interrupted" ? turn.heard.replace(/…$/, "") : turn.agent;
      agent.append(document.createTextNode(heard || (turn.outcome ? "" : "…")));
      if (turn.outcome === "interrupted" && turn.agent.length > heard.length) {
        const unheard = document.createElement("span");
        unheard.className = "unheard";
        unheard.textContent = turn.agent.slice(heard.trim().length);
        agent.append(unheard);
      }
      item.append(agent);
    }
    const facts = [turn.kind, turn.outcome];
    if (turn.m2ePage !== null) facts.push(`mouth-to-ear ${turn.m2ePage} ms (measured here)`);
    if (turn.m2eServer !== null) facts.push(`${turn.m2eServer} ms (server)`);
    const small = document.createElement("div");
    small.className = "facts";
    small.textContent = facts.filter(Boolean).join(" · ");
    item.append(small);
    return item;
  }));
}

function line(who, text, cls) {
  const div = document.createElement("div");
  div.className = cls;
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = `${who}:`;
  div.append(name, document.createTextNode(text));
  return div;
}
