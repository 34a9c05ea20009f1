FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH"
RUN pip install --no-cache-dir uv && useradd --create-home baton
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput -v0 && chown -R baton /app/var
USER baton
EXPOSE 8000
CMD ["gunicorn", "crm.wsgi", "-b", "0.0.0.0:8000", "-w", "4", "--access-logfile", "-"]
