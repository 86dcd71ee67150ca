// An external Mosquitto 2.x (MQTT_URL) for fleets: Kioskhub connects as an admin client, keeps
// one dynamic-security client + role per machine (created with the machine, password changed
// and session kicked on key rotation, deleted with it), and every process joins the shared
// subscription $share/kioskhub/kh/v1/+/up/# so each device message is handled once.
import { randomUUID } from 'node:crypto';
import { MQTT_SHARE_GROUP, MQTT_TOPIC_ROOT } from '@kioskhub/protocol';
import { connectAsync, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { throttledWarning } from '../../platform/http/throttled-warning.js';
import type { MqttPublisher } from './mqtt-link.js';
import type { MqttGateway } from './mqtt.gateway.js';

const CONTROL = '$CONTROL/dynamic-security/v1';
const CONTROL_RESPONSE = `${CONTROL}/response`;
const SHARED_UP = `$share/${MQTT_SHARE_GROUP}/${MQTT_TOPIC_ROOT}/+/up/#`;
/** Retained births are not delivered to shared subscriptions: read them once at start. */
const RETAINED_STATUS = `${MQTT_TOPIC_ROOT}/+/up/status`;
const RETAINED_READ_MS = 1_000;
const DYNSEC_TIMEOUT_MS = 10_000;

const KIOSKHUB_ROLE = 'kioskhub-server';
export const roleOf = (machineId: string) => `kh-machine-${machineId}`;

type DynsecCommand = { command: string; [field: string]: unknown };
type DynsecResponse = { command: string; error?: string; correlationData?: string; data?: unknown };

export interface MosquittoOptions {
  url: string;
  username?: string;
  password?: string;
  nodeId: string;
  logger: Logger;
}

export async function connectMosquitto(options: MosquittoOptions) {
  const { logger } = options;
  let gateway: MqttGateway | undefined;
  const pending = new Map<string, { resolve(r: DynsecResponse): void; timer: NodeJS.Timeout }>();
  let readingRetained = true;
  /** Machines taken on from their retained births at start. */
  const bornBeforeListening = new Set<string>();

  const client: MqttClient = await connectAsync(options.url, {
    clientId: `kioskhub-${options.nodeId}-${randomUUID().slice(0, 6)}`,
    clean: true,
    reconnectPeriod: 1_000,
    connectTimeout: 10_000,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
  });
  // The client retries every second while Mosquitto is away: one warning of each a minute, with
  // how many were held back.
  const connectionError = throttledWarning(
    logger,
    'mqtt: broker connection error',
    60_000,
    'suppressedSinceLastWarning',
  );
  const unreachable = throttledWarning(
    logger,
    'mqtt: broker unreachable; reconnecting',
    60_000,
    'suppressedSinceLastWarning',
  );
  client.on('error', (err) => connectionError({ err }));
  client.on('offline', () => unreachable({}));
  client.on('message', (topic, payload, packet) => {
    if (topic === CONTROL_RESPONSE) return dynsecResponse(payload);
    const machineId = topic.split('/')[2];
    if (!gateway || !machineId) return;
    // Retained births seen at start come on the plain subscription; live traffic on the shared one.
    if (packet.retain && !readingRetained) return;
    if (packet.retain) bornBeforeListening.add(machineId);
    gateway
      .deviceMessage(machineId, topic, payload, { external: true })
      .catch((err: unknown) => logger.error({ err, machineId, topic }, 'mqtt: message failed'));
  });

  function dynsecResponse(payload: Buffer): void {
    let body: { responses?: DynsecResponse[] };
    try {
      body = JSON.parse(payload.toString('utf8')) as { responses?: DynsecResponse[] };
    } catch {
      return;
    }
    for (const r of body.responses ?? []) {
      const p = r.correlationData ? pending.get(r.correlationData) : undefined;
      if (!p) continue;
      pending.delete(r.correlationData!);
      clearTimeout(p.timer);
      p.resolve(r);
    }
  }

  /**
   * Runs dynsec commands one by one; answers each command's response (error included). Fails at
   * once while the broker is unreachable, and within DYNSEC_TIMEOUT_MS otherwise: the caller logs
   * it (never an unhandled rejection, never a request left hanging).
   */
  async function dynsec(commands: DynsecCommand[]): Promise<DynsecResponse[]> {
    if (!client.connected) throw new Error('the MQTT broker is unreachable: dynamic security not changed');
    const waits = commands.map((c) => {
      const correlationData = randomUUID();
      const answer = new Promise<DynsecResponse>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(correlationData);
          reject(
            new Error(
              `dynamic security did not answer ${c.command} (is the plugin loaded, and this user its admin?)`,
            ),
          );
        }, DYNSEC_TIMEOUT_MS);
        timer.unref();
        pending.set(correlationData, { resolve, timer });
      });
      return { command: { ...c, correlationData }, answer };
    });
    const answers = Promise.all(waits.map((w) => w.answer));
    answers.catch(() => undefined); // awaited below; a publish that fails first must not leave it unhandled
    let sendTimer: NodeJS.Timeout | undefined;
    const sendTimeout = new Promise<never>((_, reject) => {
      sendTimer = setTimeout(
        () => reject(new Error('the MQTT broker did not take a dynamic security command in time')),
        DYNSEC_TIMEOUT_MS,
      );
      sendTimer.unref();
    });
    try {
      await Promise.race([
        client.publishAsync(CONTROL, JSON.stringify({ commands: waits.map((w) => w.command) }), { qos: 1 }),
        sendTimeout,
      ]);
    } finally {
      clearTimeout(sendTimer);
    }
    return answers;
  }

  function failIf(responses: DynsecResponse[], tolerated: RegExp = /^$/): void {
    const failed = responses.find((r) => r.error && !tolerated.test(r.error));
    if (failed) throw new Error(`dynamic security ${failed.command}: ${failed.error}`);
  }

  await client.subscribeAsync(CONTROL_RESPONSE, { qos: 1 });
  // Kioskhub's own user (the dynsec admin) also needs the device topics: it grants them to
  // itself, so a broker set up with `mosquitto_ctrl dynsec init` needs nothing more.
  const self = options.username ?? decodeURIComponent(new URL(options.url).username);
  if (self) await grantSelf(self);

  /** The broker client's roles; undefined when there is no such client. */
  async function clientRoles(username: string): Promise<string[] | undefined> {
    const [found] = await dynsec([{ command: 'getClient', username }]);
    if (found?.error && /not found/i.test(found.error)) return undefined;
    failIf([found!]);
    const roles =
      (found?.data as { client?: { roles?: { rolename: string }[] } } | undefined)?.client?.roles ?? [];
    return roles.map((r) => r.rolename);
  }

  /** Whether the broker client has the role (Mosquitto 2.0.11 answers a repeated addClientRole "Internal error"). */
  async function hasRole(username: string, rolename: string): Promise<boolean> {
    return (await clientRoles(username))?.includes(rolename) ?? false;
  }

  /**
   * The roles of the machine's broker login (undefined: there is none). A login of that name that
   * is not a machine's own (an operator's, a bridge's, Kioskhub's own) is never given a machine's
   * key: a tenant naming a machine after it would take it over.
   */
  async function machineClientRoles(machineId: string): Promise<string[] | undefined> {
    const roles = await clientRoles(machineId);
    if (roles === undefined || roles.every((r) => r === roleOf(machineId))) return roles;
    throw new Error(
      `a broker login named "${machineId}" exists and is not this machine's (roles: ${roles.join(', ') || 'none'}): ` +
        'left alone; this machine cannot log in over MQTT',
    );
  }

  async function grantSelf(username: string): Promise<void> {
    if (await hasRole(username, KIOSKHUB_ROLE)) return;
    const root = `${MQTT_TOPIC_ROOT}/+`;
    failIf(
      await dynsec([
        {
          command: 'createRole',
          rolename: KIOSKHUB_ROLE,
          acls: [
            { acltype: 'subscribePattern', topic: SHARED_UP, allow: true },
            { acltype: 'subscribePattern', topic: `${root}/up/#`, allow: true },
            { acltype: 'publishClientReceive', topic: `${root}/up/#`, allow: true },
            { acltype: 'publishClientSend', topic: `${root}/down/#`, allow: true },
          ],
        },
      ]),
      /already/i,
    );
    // Changing a client's roles disconnects every session of that user (this one too), so the
    // answer may never come: the reconnect brings the new rights. Another process starting at
    // the same time may have added the role first: then the answer is an error, nobody is
    // disconnected, and the role is there.
    const reconnected = new Promise<'reconnected'>((resolve) =>
      client.once('connect', () => resolve('reconnected')),
    );
    const answered = dynsec([{ command: 'addClientRole', username, rolename: KIOSKHUB_ROLE }]).then(
      ([r]) => r,
      () => undefined,
    );
    const first = await Promise.race([reconnected, answered]);
    if (first !== 'reconnected') {
      if (first === undefined)
        throw new Error('dynamic security neither answered addClientRole nor ended the session');
      if (first.error) {
        if (await hasRole(username, KIOSKHUB_ROLE)) return;
        throw new Error(`dynamic security addClientRole: ${first.error}`);
      }
      // Answered: the disconnect that carries the new rights follows.
      await reconnected;
    }
    logger.info({ username, role: KIOSKHUB_ROLE }, 'mqtt: granted Kioskhub’s broker user the device topics');
  }

  /** A new machine: its role (ACL on its own topics) and its client with the machine's key. */
  async function machineCreated(machineId: string, key: string): Promise<void> {
    const rolename = roleOf(machineId);
    failIf(
      await dynsec([
        {
          command: 'createRole',
          rolename,
          acls: [
            { acltype: 'publishClientSend', topic: `${MQTT_TOPIC_ROOT}/${machineId}/up/#`, allow: true },
            { acltype: 'subscribePattern', topic: `${MQTT_TOPIC_ROOT}/${machineId}/down/#`, allow: true },
            {
              acltype: 'publishClientReceive',
              topic: `${MQTT_TOPIC_ROOT}/${machineId}/down/#`,
              allow: true,
            },
          ],
        },
      ]),
      /already exists/i,
    );
    const created = await dynsec([
      {
        command: 'createClient',
        username: machineId,
        clientid: machineId,
        password: key,
        roles: [{ rolename }],
      },
    ]);
    if (created[0]?.error && /already exists/i.test(created[0].error)) {
      // Provisioned before (a retry): make it match; but only a machine's own login.
      const roles = await machineClientRoles(machineId);
      failIf(await dynsec([{ command: 'setClientPassword', username: machineId, password: key }]));
      if (!roles?.includes(rolename))
        failIf(await dynsec([{ command: 'addClientRole', username: machineId, rolename }]));
    } else failIf(created);
  }

  const publisher: MqttPublisher = {
    publish: async (topic, body, opts) => {
      await client.publishAsync(topic, JSON.stringify(body), { qos: opts.qos, retain: opts.retain ?? false });
    },
  };

  return {
    publisher,
    /** Starts taking device messages (after the gateway exists). */
    async attach(g: MqttGateway, opts: { readRetained: boolean }): Promise<void> {
      gateway = g;
      // Alone, this process holds every machine: the retained births say which are online. With
      // several processes, machines are taken on by whichever process hears from them first.
      if (opts.readRetained) {
        await client.subscribeAsync(RETAINED_STATUS, { qos: 1 });
        await new Promise((r) => setTimeout(r, RETAINED_READ_MS).unref());
        await client.unsubscribeAsync(RETAINED_STATUS);
      }
      readingRetained = false;
      await client.subscribeAsync(SHARED_UP, { qos: 1 });
      // Commands sent to them so far went out before this process could hear the answers (a
      // repeated `done` after a restart, say): they go out again now that it can.
      for (const machineId of bornBeforeListening) g.resendInFlight(machineId);
      bornBeforeListening.clear();
    },
    machineCreated,
    /** The old key stops working and a session opened with it is dropped. */
    async keyRotated(machineId: string, key: string): Promise<void> {
      // No client yet (a machine from before MQTT_URL, or whose creation was superseded by this
      // rotation before it reached the broker): create it with this key; no session to end.
      if ((await machineClientRoles(machineId)) === undefined) return machineCreated(machineId, key);
      const [changed] = await dynsec([{ command: 'setClientPassword', username: machineId, password: key }]);
      if (changed?.error && /not found/i.test(changed.error)) return machineCreated(machineId, key);
      failIf([changed!]);
      // Disabling a client disconnects it; enabled again, it logs in with the new key only.
      failIf(
        await dynsec([
          { command: 'disableClient', username: machineId },
          { command: 'enableClient', username: machineId },
        ]),
      );
    },
    async machineDeleted(machineId: string): Promise<void> {
      failIf(
        await dynsec([
          { command: 'deleteClient', username: machineId },
          { command: 'deleteRole', rolename: roleOf(machineId) },
        ]),
        /not found/i,
      );
    },
    dynsec,
    async close(): Promise<void> {
      for (const p of pending.values()) clearTimeout(p.timer);
      await client.endAsync();
    },
  };
}

export type Mosquitto = Awaited<ReturnType<typeof connectMosquitto>>;
