// What the dispatch engine needs from a machine's connection, whatever carries it: Socket.IO
// (v1/v2) or MQTT. The dispatcher and presence speak only to this; transports implement it.
import { V2_EVENTS, type DispenseCommand } from '@kioskhub/protocol';
import type { Socket } from 'socket.io';

export type Transport = 'socket.io' | 'mqtt';

export interface SendOptions {
  /** 1 for the first send of this command. */
  attempt: number;
  /** ISO time after which the command must not run (carried by transports that have the field). */
  expiresAt: string;
  /** How long to wait for the machine's acceptance. */
  timeoutMs: number;
}

export interface MachineLink {
  readonly transport: Transport;
  /** Unique per connection. */
  readonly id: string;
  readonly connected: boolean;
  /**
   * The broker watches this connection (MQTT keep-alive and last will): silence between
   * heartbeats does not drop it.
   */
  readonly livenessByBroker: boolean;
  /** Commands past their expiry are never sent on this link again (the order goes to review). */
  readonly honoursExpiry: boolean;
  /**
   * Drops the connection. `reconnect`: so that the machine connects again by itself (it moved to
   * another site, went silent); otherwise it is sent away (a newer connection or key replaced it).
   */
  disconnect(reconnect: boolean): void;
  /**
   * Sends a command (again). Resolves with the machine's acceptance (`{accepted: …}`), rejects
   * when none came within `timeoutMs`. Delivery to a broker is not acceptance.
   */
  sendCommand(payload: DispenseCommand, options: SendOptions): Promise<unknown>;
}

/**
 * A v2 (or v1) Socket.IO socket as a link; v1 sends go to the socket directly. A class, not an
 * object literal: a literal with a getter was kept in dictionary mode, 448 bytes of property
 * table plus three closures for each connected machine; instances share their methods.
 */
class SocketLink implements MachineLink {
  readonly transport = 'socket.io';
  readonly livenessByBroker = false;
  readonly honoursExpiry = false;
  readonly id: string;

  constructor(private readonly socket: Socket) {
    this.id = socket.id;
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  disconnect(reconnect: boolean): void {
    if (reconnect) closeForReconnect(this.socket);
    else this.socket.disconnect(true);
  }

  sendCommand(payload: DispenseCommand, options: SendOptions): Promise<unknown> {
    return this.socket
      .timeout(options.timeoutMs)
      .emitWithAck(V2_EVENTS.dispense, payload) as Promise<unknown>;
  }
}

export const socketLink = (socket: Socket): MachineLink => new SocketLink(socket);

/**
 * Closes a socket's connection at the transport, so that its client connects again by itself.
 * `socket.disconnect(true)` tells a socket.io client the server sent it away, after which it
 * waits for its own code to call `connect()`: the earlier vending firmware never does, and stayed
 * offline until power-cycled. Kept for sockets that must not come back (a replaced key, a flood).
 */
export function closeForReconnect(socket: Socket): void {
  socket.conn.close();
}
