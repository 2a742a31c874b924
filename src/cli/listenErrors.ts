import { settingError } from '../core/config.js';
import type { ConfigError } from '../core/errors.js';
import { errorCode } from '../core/errors.js';

/** The settings that say where a server listens: its port and its interface. */
export interface ListenSettings {
  port: { name: string; value: number };
  host: { name: string; value: string };
}

/**
 * A server that could not listen because of its settings (the port taken or not allowed, the interface not on this
 * host), as the settings error (exit 2) naming the setting to change; undefined for any other error.
 */
export function listenSettingError(err: unknown, settings: ListenSettings): ConfigError | undefined {
  const { port, host } = settings;
  const where = `${host.value}:${port.value}`;
  switch (errorCode(err)) {
    case 'EADDRINUSE':
      return settingError(port.name, `port ${port.value} is already in use on ${host.value} (another process listens there): pick a free port, or stop that process`, String(port.value));
    case 'EACCES':
      return settingError(port.name, `not allowed to listen on ${where} (ports below 1024 need privileges): pick a port above 1023`, String(port.value));
    case 'EADDRNOTAVAIL':
      return settingError(host.name, `${host.value} is not an address of this host: use one of its interfaces (127.0.0.1, 0.0.0.0 for all)`, host.value);
    default:
      return undefined;
  }
}
