"""RabbitMQ: the topology (declared in one place) and confirmed publishing of job ids."""
