/**
 * onnxruntime-node 1.30 on Linux starts Microsoft's 1DS telemetry with the first session: it reads
 * /proc/self/cmdline and /etc/machine-id, writes /tmp/mat-debug-PID.log and queues events for upload. Nothing may
 * leave the machine but LM requests and the model downloads the user configured, and its pass over the command line
 * recurses per character: a 15,000-character query argument overflowed the encoder worker's stack (exit 139, no
 * message). ORT_DISABLE_TELEMETRY (read when the first session of the process is created) turns all of it off.
 */
export function disableOrtTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY = '1';
}
