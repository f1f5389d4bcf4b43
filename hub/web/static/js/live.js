// The live stream: one WebSocket to the hub, reconnecting with backoff; frames are arrays of messages.
import { handle, store } from "./store.js";

let socket = null;
let retry = 500;
let onStatus = () => {};
let onSignedOut = () => {};

export function startLive(status, signedOut) {
  onStatus = status;
  onSignedOut = signedOut;
  connect();
}

export function select(unit) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ select: unit }));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/live`);
  socket.onopen = () => {
    onStatus("live");
    select(store.selected);
  };
  socket.onmessage = (event) => {
    retry = 500; // the hub sends a first frame only to a stream it keeps: a refused one backs off
    let messages;
    try { messages = JSON.parse(event.data); } catch (e) { return; }
    for (const message of messages) handle(message);
  };
  socket.onclose = (event) => {
    socket = null;
    if (event.code === 4401) { onStatus("signed out"); onSignedOut(); return; }
    onStatus(event.code === 1013 ? `${event.reason || "too slow"}: reconnecting` : "reconnecting");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
}
