export { loadConfig, parseConfig, ConfigError, DEFAULT_CONFIG, DEFAULT_CONFIG_PATH, LOG_LEVELS, type LazysnapConfig, type LogLevel } from './config.js';
